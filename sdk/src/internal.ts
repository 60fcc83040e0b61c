import { type Engine, InvalidArgumentError } from "@weft/engine";

// The engine behind each Weft, for the SDK's own modules (HTTP API, CLI) and
// its tests; not exported from the package: users see only Weft's methods.
const engines = new WeakMap<object, Engine>();

/** @internal Called once by Weft's constructor. */
export function registerEngine(owner: object, engine: Engine): void {
  engines.set(owner, engine);
}

/** @internal The engine of a Weft. */
export function engineOf(owner: object): Engine {
  const engine = engines.get(owner);
  if (engine === undefined)
    throw new InvalidArgumentError("weft", "expected a Weft made by createWeft or createClient");
  return engine;
}
