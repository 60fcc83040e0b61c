import { defineConfig } from "vite";

// Relative asset URLs: the same build works under any prefix the HTTP API
// serves it at ("/", "/ui", "/weft/ui"...). JSX compiles to Preact's runtime.
export default defineConfig({
  base: "./",
  root: "src",
  build: { outDir: "../dist", emptyOutDir: true, target: "es2022", reportCompressedSize: false },
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
});
