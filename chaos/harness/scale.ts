/** `pnpm test:chaos --long` (CHAOS_LONG=1): the long scenarios run and every scenario is scaled up. */
export const LONG = process.env.CHAOS_LONG === "1";

/** `short` in the CI set, `long` with --long. */
export function scale<T>(short: T, long: T): T {
  return LONG ? long : short;
}
