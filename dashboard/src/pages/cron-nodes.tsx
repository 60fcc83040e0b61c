import { useEffect } from "preact/hooks";
import { api, type CronInfo, type NodeInfo } from "../api.js";
import { ago, duration, ErrorNote, useData } from "../components.js";

export function NodeTable({ nodes }: { nodes: NodeInfo[] }) {
  return (
    <table>
      <thead>
        <tr>
          <th scope="col">Node</th>
          <th scope="col">Host / pid</th>
          <th scope="col" class="num">
            Running / capacity
          </th>
          <th scope="col">Heartbeat</th>
          <th scope="col">Tasks</th>
          <th scope="col">Role</th>
        </tr>
      </thead>
      <tbody>
        {nodes.map((n) => (
          <tr key={n.id}>
            <td>
              <code>{n.id}</code>
              <div class="hint">{n.appName}</div>
            </td>
            <td>
              {n.host} / {n.pid}
            </td>
            <td class="num">
              {n.running} / {n.capacity}
            </td>
            <td>{duration(n.heartbeatAgeMs)} ago</td>
            <td class="names">{n.taskNames.join(", ") || "—"}</td>
            <td>
              {n.isLeader ? "★ leader" : "member"}
              {n.draining ? " (draining)" : ""}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function Nodes() {
  const [data, error, reload] = useData(() => api<{ items: NodeInfo[] }>("/v1/nodes"), []);
  useEffect(() => {
    const t = setInterval(reload, 5_000);
    return () => clearInterval(t);
  }, [reload]);
  return (
    <>
      <h1>Nodes</h1>
      <ErrorNote error={error} />
      {data && <NodeTable nodes={data.items} />}
    </>
  );
}

export function Cron() {
  const [data, error] = useData(() => api<{ items: CronInfo[] }>("/v1/cron"), []);
  return (
    <>
      <h1>Cron</h1>
      <ErrorNote error={error} />
      {data && (
        <table>
          <thead>
            <tr>
              <th scope="col">Task</th>
              <th scope="col">Pattern</th>
              <th scope="col">Time zone</th>
              <th scope="col">Last tick</th>
              <th scope="col">Next tick</th>
            </tr>
          </thead>
          <tbody>
            {data.items.length === 0 && (
              <tr>
                <td colSpan={5}>No cron schedules.</td>
              </tr>
            )}
            {data.items.map((c) => (
              <tr key={c.taskName}>
                <td>{c.taskName}</td>
                <td>
                  <code>{c.pattern}</code>
                </td>
                <td>{c.timezone ?? "UTC"}</td>
                <td>{ago(c.lastTickAt)}</td>
                <td>{ago(c.nextTickAt)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  );
}
