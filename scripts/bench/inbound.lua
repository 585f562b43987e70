-- wrk script: POSTs pre-signed inbound-call webhooks, each a distinct call, cycling through the
-- file written by `loadgen --write-requests` (one "signature<TAB>body" per line).
local requests = {}
local i = 0

function init(args)
  for line in io.lines(args[1]) do
    local signature, body = line:match("^([^\t]+)\t(.*)$")
    requests[#requests + 1] = wrk.format("POST", wrk.path, {
      ["Content-Type"] = "application/x-www-form-urlencoded",
      ["X-Twilio-Signature"] = signature,
    }, body)
  end
  math.randomseed(os.time() + #tostring({}))
  i = math.random(#requests)
end

function request()
  i = i % #requests + 1
  return requests[i]
end
