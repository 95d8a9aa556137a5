-- wrk script: prints one machine-readable line at the end of a run.
-- rate is per second of the measured duration; bytes include headers.
done = function(summary, latency, requests)
  local secs = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    "WRK requests=%d bytes=%d secs=%.3f rps=%.1f mbps=%.1f p50_us=%d p99_us=%d " ..
    "err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d\n",
    summary.requests, summary.bytes, secs, summary.requests / secs,
    summary.bytes / secs / 1e6, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout))
end
