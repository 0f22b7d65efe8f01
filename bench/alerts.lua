-- wrk script: POST a fresh Alertmanager webhook v4 notification on every request.
--
--   wrk -s bench/alerts.lua URL -- SALT TOKEN
--
-- SALT (a hex string, 4 digits are used) must differ between wrk runs against the same
-- server, e.g. the warm-up and the measured run, so no alert is ever sent twice. Every
-- alert carries a fingerprint made of SALT, the wrk thread number and a per-thread serial
-- number, so each request holds alerts the server has never seen: a benchmark that
-- replays one body only measures the server's dedup fast path.
--
-- done() prints one line "bench-lua: key=value ..." with the sizes of the bodies sent and
-- wrk's own counters, for bench/ingest.py to read.

local threads = {}
local next_thread = 0

function setup(thread)
  thread:set("thread_no", next_thread)
  next_thread = next_thread + 1
  table.insert(threads, thread)
end

local concat, format, floor = table.concat, string.format, math.floor

-- Kinds of alert, after kube-prometheus rules; the generatorURL queries are URL-encoded
-- the way Prometheus writes them, with "&" escaped as Go's JSON encoder does.
local KINDS = {
  {
    alertname = "KubePodCrashLooping",
    severity = "warning",
    job = "kube-state-metrics",
    summary = "Pod is crash looping.",
    description = 'Pod %s/%s (%s) is in waiting state \\"CrashLoopBackOff\\".',
    runbook = "kubepodcrashlooping",
    expr = "kube_pod_container_status_waiting_reason%7Breason%3D%22CrashLoopBackOff%22%7D",
  },
  {
    alertname = "KubeContainerOOMKilled",
    severity = "critical",
    job = "kube-state-metrics",
    summary = "Container was OOM killed.",
    description = "Pod %s/%s (%s) was OOMKilled 3 times in 10m.",
    runbook = "kubecontaineroomkilled",
    expr = "kube_pod_container_status_last_terminated_reason%7Breason%3D%22OOMKilled%22%7D",
  },
  {
    alertname = "KubePodNotReady",
    severity = "warning",
    job = "kube-state-metrics",
    summary = "Pod has been non-ready for 15m.",
    description = "Pod %s/%s (%s) has not been ready for 15m.",
    runbook = "kubepodnotready",
    expr = "kube_pod_status_phase%7Bphase%3D~%22Pending%7CUnknown%22%7D",
  },
  {
    alertname = "CPUThrottlingHigh",
    severity = "info",
    job = "kubelet",
    summary = "Elevated CPU throttling.",
    description = "48%% CPU throttling of pod %s/%s (%s).",
    runbook = "cputhrottlinghigh",
    expr = "rate%28container_cpu_cfs_throttled_periods_total%5B5m%5D%29",
  },
}
local NAMESPACES = { "payments", "checkout", "search", "identity", "ledger", "catalog" }
local CONTAINERS = { "api", "worker", "sidecar" }
local ALERTS_PER_BODY = 3

local salt, tid, serial, base_time
local headers = {}

function init(args)
  salt = tonumber(args[1] or "0", 16) % 65536
  headers["Content-Type"] = "application/json"
  headers["Authorization"] = "Bearer " .. (args[2] or "bench-token")
  tid = (thread_no or 0) % 256
  serial = 0
  base_time = os.time() - 3600
  sent = 0 -- read by done() through thread:get
  sent_bytes = 0
  min_bytes = math.huge
  max_bytes = 0
end

local function hex40(n)
  -- 10 hex digits without relying on string.format("%x") beyond 32 bits.
  return format("%05x%05x", floor(n / 1048576) % 1048576, n % 1048576)
end

local function rfc3339(n)
  -- Prometheus stamps alerts with millisecond times; Go trims trailing zeros.
  local ms = n * 7 % 999 + 1
  local frac = format("%03d", ms):gsub("0+$", "")
  return os.date("!%Y-%m-%dT%H:%M:%S", base_time + floor(n / 4) % 3000) .. "." .. frac .. "Z"
end

local function pod_suffix(n)
  local alphabet = "bcdfghjklmnpqrstvwxz2456789"
  local out = {}
  for i = 1, 5 do
    local k = n % 27 + 1
    out[i] = alphabet:sub(k, k)
    n = floor(n / 27) + i * 7
  end
  return concat(out)
end

local function labels_json(parts)
  local out = {}
  for i = 1, #parts, 2 do
    out[#out + 1] = format('"%s":"%s"', parts[i], parts[i + 1])
  end
  return "{" .. concat(out, ",") .. "}"
end

function request()
  local body_no = serial
  local kind = KINDS[body_no % #KINDS + 1]
  local namespace = NAMESPACES[floor(body_no / #KINDS) % #NAMESPACES + 1]
  local deploy = CONTAINERS[body_no % #CONTAINERS + 1] .. "-" .. format("%07x", body_no * 2654435 % 268435456)
  local common = {
    "alertname", kind.alertname, "job", kind.job, "namespace", namespace,
    "severity", kind.severity,
  }
  local summary = kind.summary
  local alerts = {}
  for i = 1, ALERTS_PER_BODY do
    local n = body_no * ALERTS_PER_BODY + i
    local container = CONTAINERS[i]
    local pod = deploy .. "-" .. pod_suffix(n)
    local description = format(kind.description, namespace, pod, container)
    local labels = labels_json({
      "alertname", kind.alertname, "container", container, "instance",
      format("10.42.%d.%d:8080", n % 200, floor(n / 200) % 250 + 2), "job", kind.job,
      "namespace", namespace, "pod", pod, "severity", kind.severity,
    })
    alerts[i] = concat({
      '{"status":"firing","labels":', labels,
      ',"annotations":{"description":"', description,
      '","runbook_url":"https://runbooks.example.com/',
      kind.runbook, '","summary":"', summary, '"},"startsAt":"', rfc3339(n),
      '","endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://prometheus:9090/graph?g0.expr=',
      kind.expr, '\\u0026g0.tab=1","fingerprint":"', format("%04x%02x", salt, tid), hex40(n), '"}',
    })
  end
  local body = concat({
    '{"receiver":"remediator","status":"firing","alerts":[', concat(alerts, ","),
    '],"groupLabels":', labels_json({ "alertname", kind.alertname, "namespace", namespace }),
    ',"commonLabels":', labels_json(common),
    ',"commonAnnotations":{"runbook_url":"https://runbooks.example.com/',
    kind.runbook, '","summary":"', summary, '"}',
    ',"externalURL":"http://alertmanager:9093","version":"4","groupKey":',
    '"{}:{alertname=\\"', kind.alertname,
    '\\", namespace=\\"', namespace, '\\"}","truncatedAlerts":0}',
  })
  serial = serial + 1
  local size = #body
  sent = sent + 1
  sent_bytes = sent_bytes + size
  if size < min_bytes then min_bytes = size end
  if size > max_bytes then max_bytes = size end
  return wrk.format("POST", nil, headers, body)
end

function done(summary, latency, requests)
  local bodies, bytes, lo, hi = 0, 0, math.huge, 0
  for _, thread in ipairs(threads) do
    bodies = bodies + (thread:get("sent") or 0)
    bytes = bytes + (thread:get("sent_bytes") or 0)
    lo = math.min(lo, thread:get("min_bytes") or math.huge)
    hi = math.max(hi, thread:get("max_bytes") or 0)
  end
  if bodies == 0 then lo = 0 end
  local e = summary.errors
  io.write(format(
    "bench-lua: bodies=%d body_bytes=%d body_min=%d body_max=%d requests=%d duration_us=%d"
      .. " p50_us=%d p99_us=%d status_errors=%d connect_errors=%d read_errors=%d"
      .. " write_errors=%d timeouts=%d\n",
    bodies, bytes, lo, hi, summary.requests, summary.duration, latency:percentile(50),
    latency:percentile(99), e.status, e.connect, e.read, e.write, e.timeout
  ))
end
