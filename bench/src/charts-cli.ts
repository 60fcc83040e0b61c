// `pnpm bench:charts`: redraws the SVG charts in bench/results/ from bench/results/results.json.
import { loadResults, writeCharts } from "./charts.js";

if (loadResults().results.length === 0) {
  console.error("bench:charts: no results yet; run pnpm bench --charts first");
  process.exitCode = 1;
} else {
  for (const file of await writeCharts()) console.log(file);
}
