// Shared by the router's k6 scripts: where the service is, the baseline of a
// scenario, and the files each run leaves in /scripts/benchmark.

export const BASE = "http://router-server:8080";
export const RUN = __ENV.LOADTEST_RUN_NAME || "baseline";

// The stored baseline summary of a scenario (none for the baseline run itself).
export function readBaseline(scenario) {
  if (RUN === "baseline") return null;
  return JSON.parse(open(`./benchmark/baseline_${scenario}.json`));
}

function pct(now, before) {
  return before ? (((now - before) / before) * 100).toFixed(1) + "%" : "n/a";
}

// <run>_<scenario>.json and .summary, and .diff against the baseline when there is one.
export function summaryFiles(data, scenario, baseline) {
  const d = data.metrics.http_req_duration.values;
  const reqs = data.metrics.http_reqs.values;
  const lines = [
    `run ${RUN}, scenario ${scenario}`,
    `requests ${reqs.count} (${reqs.rate.toFixed(1)}/s)`,
    `latency avg ${d.avg.toFixed(2)} ms, p(90) ${d["p(90)"].toFixed(2)} ms, p(95) ${d["p(95)"].toFixed(2)} ms`,
  ];
  const out = {
    [`/scripts/benchmark/${RUN}_${scenario}.json`]: JSON.stringify(data, null, 2),
    [`/scripts/benchmark/${RUN}_${scenario}.summary`]: lines.join("\n") + "\n",
    stdout: lines.join("\n") + "\n",
  };
  if (baseline) {
    const b = baseline.metrics.http_req_duration.values;
    const diff = ["avg", "med", "p(90)", "p(95)", "max"].map((k) => `${k} ${pct(d[k], b[k])}`);
    diff.push(`rate ${pct(reqs.rate, baseline.metrics.http_reqs.values.rate)}`);
    out[`/scripts/benchmark/${RUN}_${scenario}.diff`] = diff.join("\n") + "\n";
  }
  return out;
}
