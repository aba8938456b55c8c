import http from "k6/http";
import { check } from "k6";

// Reads payments the seed file made (pay_seed_1 .. pay_seed_5000).
export const options = { vus: 4, duration: "5s" };

export default function () {
  const i = 1 + Math.floor(Math.random() * 5000);
  const r = http.get(`http://router-server:8080/payments/pay_seed_${i}`, {
    headers: { "api-key": `key_seed_${1 + (i % 10)}` },
    tags: { name: "lookup" },
  });
  check(r, { "found": (x) => x.status === 200 });
}
