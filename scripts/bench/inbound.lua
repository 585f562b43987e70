-- wrk script: POSTs pre-signed inbound-call webhooks read in order from files written by
-- `loadgen --write-requests` (one "signature<TAB>body" per line), one file per wrk thread: the
-- arguments after `--`, the first file for the first thread and so on.
--
-- A thread that reaches the end of its file starts it over, and the run prints how many requests
-- were repeats. A repeated CallSid is a carrier retry, which dialtone logs without creating a
-- call, so a benchmark of new calls gives each run files longer than it can use.
local threads = {}
local started = 0

function setup(thread)
  started = started + 1
  thread:set("id", started)
  table.insert(threads, thread)
end

local file
local wrapped = false
repeats = 0

function init(args)
  file = assert(io.open(args[id] or args[1], "r"))
end

function request()
  local line = file:read("*l")
  if not line then
    file:seek("set")
    line = file:read("*l")
    wrapped = true
  end
  if wrapped then repeats = repeats + 1 end
  local signature, body = line:match("^([^\t]+)\t(.*)$")
  return wrk.format("POST", wrk.path, {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["X-Twilio-Signature"] = signature,
  }, body)
end

function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do total = total + (thread:get("repeats") or 0) end
  io.write(string.format("repeated requests: %d\n", total))
end
