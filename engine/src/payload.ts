import { InvalidArgumentError, OutputValidationError, PayloadTooLargeError } from "./errors.js";

/**
 * A `\u0000` or a lone-surrogate escape (`\ud800`-`\udfff`) in JSON text, not
 * preceded by an escaping backslash: JSON.stringify writes NUL and unpaired
 * surrogates this way, and PostgreSQL's jsonb refuses both.
 */
const UNSTORABLE_ESCAPE = /(?<!\\)(?:\\\\)*\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})/;

function refuse(taskName: string, what: "input" | "result", detail: string): Error {
  // A result that cannot be stored fails like one that fails its schema: the same attempt would fail the same way.
  if (what === "result") return new OutputValidationError(taskName, [{ path: "", message: detail }]);
  return new InvalidArgumentError(what, `the ${what} of task "${taskName}" ${detail}`);
}

/** JSON text of a task's input or result, refused when over the size limit or not storable as jsonb. */
export function encodePayload(taskName: string, what: "input" | "result", value: unknown, limitBytes: number): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value === undefined ? null : value);
  } catch (error) {
    throw refuse(taskName, what, `cannot be serialised as JSON: ${String(error)}`);
  }
  if (text === undefined) text = "null";
  // Fast path: a string never takes more than 3 bytes per UTF-16 unit.
  if (text.length * 3 > limitBytes) {
    const bytes = Buffer.byteLength(text, "utf8");
    if (bytes > limitBytes) throw new PayloadTooLargeError(taskName, what, bytes, limitBytes);
  }
  if (text.includes("\\u") && UNSTORABLE_ESCAPE.test(text)) {
    throw refuse(
      taskName,
      what,
      "contains a NUL character (\\u0000) or an unpaired UTF-16 surrogate, which PostgreSQL cannot store in jsonb",
    );
  }
  return text;
}
