import { createHttpApi, type HttpServer } from "@weft/sdk/http";
import type { BenchSystem } from "./types.js";
import { weft, weftNode } from "./weft.js";

/**
 * Weft with its HTTP API mounted and idle: the same node, also serving
 * @weft/sdk/http on a local port that nobody calls. Run beside `weft` in one
 * invocation, it shows what mounting the API costs the hot path.
 */
export const weftHttp: BenchSystem = {
  ...weft,
  name: "weft-http",

  async createNode(url, workload, settings, onDone) {
    const node = weftNode(url, workload, settings, onDone);
    const api = createHttpApi(node, { tokens: [{ token: "bench-idle-token-0123456789", scope: "read" }] });
    let server: HttpServer | undefined;
    return {
      start: async () => {
        await node.start();
        server = await api.serve({ port: 0 });
      },
      stop: async () => {
        await server?.close();
        await node.stop();
      },
    };
  },
};
