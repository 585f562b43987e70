-- wrk script: DNI session creation as the snippet sends it, every request a new visitor from a
-- Google Ads click (text/plain JSON, a browser's user agent, an allowed origin).
local n = 0

function init(args)
  math.randomseed(os.time() + #tostring({}))
  n = math.random(1000000000)
end

function request()
  n = n + 1
  local body = string.format('{"company":"acme-plumbing","visitor_id":"bench-visitor-%012d",' ..
    '"landing_url":"https://acme.example/plumbing?utm_source=google&utm_medium=cpc&utm_campaign=winter' ..
    '&utm_term=emergency+plumber&gclid=Cj0KCQiA%x","referrer":"https://www.google.com/"}', n, n)
  return wrk.format("POST", wrk.path, {
    ["Content-Type"] = "text/plain;charset=UTF-8",
    ["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
    ["Origin"] = "http://127.0.0.1:8000",
  }, body)
end
