import http from "k6/http";
import { check } from "k6";
import { BASE, readBaseline, summaryFiles } from "./lib/helpers.js";

const baseline = readBaseline("health");

export const options = {
  vus: 4,
  duration: "5s",
  thresholds: { http_req_duration: ["p(90)<200"] },
};

export default function () {
  const r = http.get(`${BASE}/health`);
  check(r, { "status is 200": (x) => x.status === 200 });
}

export function handleSummary(data) {
  return summaryFiles(data, "health", baseline);
}
