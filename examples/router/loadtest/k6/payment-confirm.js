import http from "k6/http";
import { check } from "k6";
import { BASE, readBaseline, summaryFiles } from "./lib/helpers.js";

const baseline = readBaseline("payment-confirm");

export const options = {
  stages: [
    { duration: "2s", target: 8 },
    { duration: "6s", target: 8 },
  ],
  thresholds: { "http_req_duration{name:confirm}": ["p(90)<500"] },
};

export function setup() {
  const r = http.post(`${BASE}/accounts`, JSON.stringify({ merchant_name: "k6 load" }), {
    headers: { "Content-Type": "application/json", "api-key": "test_admin" },
  });
  if (r.status !== 200) throw new Error(`creating the merchant: ${r.status} ${r.body}`);
  return { key: r.json("api_key") };
}

export default function (m) {
  const body = { amount: 6540, currency: "USD", confirm: true };
  const r = http.post(`${BASE}/payments`, JSON.stringify(body), {
    headers: { "Content-Type": "application/json", "api-key": m.key },
    tags: { name: "confirm" },
  });
  check(r, { "payment succeeded": (x) => x.status === 200 && x.json("status") === "succeeded" });
}

export function handleSummary(data) {
  return summaryFiles(data, "payment-confirm", baseline);
}
