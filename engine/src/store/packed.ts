/**
 * Rows packed in one text, as the hot reads return them (the worker's fetch,
 * an apply's hand-over, the planner's candidates): fields separated by FIELD,
 * rows by ROW. No packed field can hold either: ids are ULIDs, task names
 * validated identifiers, numbers digits, and JSON fields escape every control
 * character.
 */
export const FIELD = "\x1f";
export const ROW = "\x1e";

/** The integer written in \`text\` from \`from\` to \`to\` (an optional minus, then digits), read in place. */
export function digits(text: string, from: number, to: number): number {
  let i = from;
  const negative = text.charCodeAt(i) === 45;
  if (negative) i++;
  let n = 0;
  for (; i < to; i++) n = n * 10 + (text.charCodeAt(i) - 48);
  return negative ? -n : n;
}
