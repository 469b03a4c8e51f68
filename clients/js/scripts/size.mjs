// Fails when the built module is over its budget, minified and gzipped (what a shop's
// page downloads).
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";

const BUDGET = 8 * 1024;
const file = "dist/checkout.js";
const raw = readFileSync(file);
const gzipped = gzipSync(raw, { level: 9 }).length;
console.log(`${file}: ${raw.length} bytes minified, ${gzipped} bytes gzipped (budget ${BUDGET})`);
if (gzipped > BUDGET) {
  console.error(`${file} is ${gzipped - BUDGET} bytes over its budget`);
  process.exit(1);
}
