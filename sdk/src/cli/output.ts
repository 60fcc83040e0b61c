import { stripVTControlCharacters } from "node:util";
import type pc from "picocolors";

export type Colors = ReturnType<typeof pc.createColors>;

/**
 * Colour only for people: never with --json, never with NO_COLOR set
 * (no-color.org), always with FORCE_COLOR set, otherwise when stdout is a terminal.
 */
export function colorEnabled(json: boolean, env: NodeJS.ProcessEnv = process.env, tty = process.stdout.isTTY): boolean {
  if (json) return false;
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== "") return false;
  if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== "" && env.FORCE_COLOR !== "0") return true;
  return tty === true;
}

/** Columns a string takes on a terminal (escape sequences take none). */
export function width(text: string): number {
  return stripVTControlCharacters(text).length;
}

export function pad(text: string, to: number, align: "left" | "right" = "left"): string {
  const fill = " ".repeat(Math.max(0, to - width(text)));
  return align === "left" ? text + fill : fill + text;
}

export interface Column {
  readonly header: string;
  readonly align?: "left" | "right";
}

/** An aligned table: a bold header, then one line per row; columns two spaces apart. */
export function table(c: Colors, columns: readonly (string | Column)[], rows: readonly (readonly string[])[]): string {
  const cols = columns.map((col) => (typeof col === "string" ? { header: col } : col));
  const widths = cols.map((col, i) => Math.max(width(col.header), ...rows.map((r) => width(r[i] ?? ""))));
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, i) =>
        i === cells.length - 1 && cols[i]?.align !== "right" ? cell : pad(cell, widths[i] ?? 0, cols[i]?.align),
      )
      .join("  ")
      .trimEnd();
  return [c.bold(line(cols.map((col) => col.header))), ...rows.map(line)].join("\n");
}

/** `2026-12-03 07:45:01Z`: UTC, to the second. */
export function time(d: Date | string | null | undefined): string {
  if (d === null || d === undefined) return "-";
  const date = d instanceof Date ? d : new Date(d);
  if (Number.isNaN(date.getTime())) return String(d);
  return `${date.toISOString().slice(0, 19).replace("T", " ")}Z`;
}

/** `850ms`, `4.2s`, `3m07s`, `2h05m`, `3d04h`. */
export function duration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "-";
  const abs = Math.abs(ms);
  const sign = ms < 0 ? "-" : "";
  if (abs < 1_000) return `${sign}${Math.round(abs)}ms`;
  if (abs < 60_000) return `${sign}${(abs / 1_000).toFixed(1)}s`;
  const s = Math.floor(abs / 1_000);
  const two = (n: number) => String(n).padStart(2, "0");
  if (s < 3_600) return `${sign}${Math.floor(s / 60)}m${two(s % 60)}s`;
  if (s < 86_400) return `${sign}${Math.floor(s / 3_600)}h${two(Math.floor((s % 3_600) / 60))}m`;
  return `${sign}${Math.floor(s / 86_400)}d${two(Math.floor((s % 86_400) / 3_600))}h`;
}

/** The end of a ULID (its random part): ids made in the same millisecond share their start. */
export function shortId(id: string): string {
  return id.length > 8 ? id.slice(-8) : id;
}

/** A task or workflow state in its colour. */
export function state(c: Colors, s: string): string {
  switch (s) {
    case "COMPLETED":
    case "COMPLETE":
      return c.green(s);
    case "FAILED":
      return c.red(s);
    case "CANCELLED":
    case "SKIP":
      return c.dim(s);
    case "RUNNING":
    case "ACQUIRED":
      return c.cyan(s);
    default:
      return c.yellow(s);
  }
}
