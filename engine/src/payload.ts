import { InvalidArgumentError, PayloadTooLargeError } from "./errors.js";

/** JSON text of a task's input or result, refused when over the size limit. */
export function encodePayload(taskName: string, what: "input" | "result", value: unknown, limitBytes: number): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value === undefined ? null : value);
  } catch (error) {
    throw new InvalidArgumentError(
      what,
      `the ${what} of task "${taskName}" cannot be serialised as JSON: ${String(error)}`,
    );
  }
  if (text === undefined) text = "null";
  // Fast path: a string never takes more than 3 bytes per UTF-16 unit.
  if (text.length * 3 > limitBytes) {
    const bytes = Buffer.byteLength(text, "utf8");
    if (bytes > limitBytes) throw new PayloadTooLargeError(taskName, what, bytes, limitBytes);
  }
  return text;
}
