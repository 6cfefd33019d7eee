// The load driver of `make bench-host` (tools/bench_host.py): autocannon, pinned in package.json.
//
//   node tools/bench_host_driver.js '{"url": ..., "connections": 32, "warmupSeconds": 2, "seconds": 5,
//                                     "headers": {...}}'
//
// Drives one URL for the warm-up, prints {"measuring": true}, drives it again for the measured
// seconds and prints one JSON line of results. Latencies are kept here at the resolution the
// client measures them (autocannon's own histogram rounds to whole milliseconds, too coarse to
// compare two p99s of about 2 ms), and the CPU this process used while measuring is reported so
// the caller can show whether the driver, rather than the server, was the limit.
"use strict";

const autocannon = require("autocannon");

function drive(options, onResponse) {
  return new Promise((resolve, reject) => {
    const instance = autocannon(options, (error, result) => (error ? reject(error) : resolve(result)));
    if (onResponse) instance.on("response", onResponse);
  });
}

function percentile(sorted, fraction) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * fraction))];
}

async function main() {
  const settings = JSON.parse(process.argv[2]);
  const options = {
    url: settings.url,
    connections: settings.connections,
    headers: settings.headers || {},
    // One response per connection at a time, as browsers and load balancers send them.
    pipelining: 1,
  };
  if (settings.warmupSeconds > 0) {
    await drive({ ...options, duration: settings.warmupSeconds });
  }
  console.log(JSON.stringify({ measuring: true }));

  const latencies = [];
  const cpuBefore = process.cpuUsage();
  const result = await drive({ ...options, duration: settings.seconds }, (_client, _status, _bytes, ms) =>
    latencies.push(ms),
  );
  const cpu = process.cpuUsage(cpuBefore);
  latencies.sort((a, b) => a - b);
  console.log(
    JSON.stringify({
      requests: latencies.length,
      seconds: result.duration,
      non_2xx: result.non2xx,
      errors: result.errors,
      timeouts: result.timeouts,
      p50_ms: percentile(latencies, 0.5),
      p99_ms: percentile(latencies, 0.99),
      cpu_seconds: (cpu.user + cpu.system) / 1e6,
    }),
  );
}

main().catch((error) => {
  console.error(`bench-host driver failed: ${error.stack || error}`);
  process.exit(1);
});
