-- wrk script for benches/http_insert.sh: every request is a durable create
-- (POST /tickets) of a ~200-byte ticket, like the peers harness's insert.
-- Counts responses by status so the shell script can check that every
-- request was answered 201.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"title":"Ticket created over HTTP by wrk","description":"' ..
    string.rep("d", 150) .. '"}'

local threads = {}

function setup(thread)
    table.insert(threads, thread)
end

function init(args)
    created = 0
    other = 0
end

function response(status, headers, body)
    if status == 201 then
        created = created + 1
    else
        other = other + 1
    end
end

function done(summary, latency, requests)
    local c, o = 0, 0
    for _, t in ipairs(threads) do
        c = c + t:get("created")
        o = o + t:get("other")
    end
    io.write(string.format(
        '{"created":%d,"other_status":%d,"requests":%d,"secs":%.3f,"ops_per_s":%.1f,"p50_us":%.1f,"p99_us":%.1f,"errors_connect":%d,"errors_read":%d,"errors_timeout":%d}\n',
        c, o, summary.requests, summary.duration / 1e6,
        summary.requests / (summary.duration / 1e6),
        latency:percentile(50), latency:percentile(99),
        summary.errors.connect, summary.errors.read, summary.errors.timeout))
end
