import { useEffect, useRef, useState } from "preact/hooks";
import { api, type NodeInfo, type QueueStats } from "../api.js";
import { duration, ErrorNote, useData } from "../components.js";
import { NodeTable } from "./cron-nodes.js";
import { ThroughputChart, ThroughputHistory } from "./throughput.js";

export function Overview() {
  // Kept across refreshes: each one reads only the seconds since the last.
  const history = useRef(new ThroughputHistory());
  const [filter, setFilter] = useState("");
  const [data, error, reload] = useData(
    () => Promise.all([api<QueueStats>("/v1/queues"), api<{ items: NodeInfo[] }>("/v1/nodes"), history.current.read()]),
    [],
  );
  useEffect(() => {
    const t = setInterval(reload, 5_000);
    return () => clearInterval(t);
  }, [reload]);
  if (!data) return <ErrorNote error={error} />;
  const [queues, nodes, throughput] = data;
  const all = [...new Set(queues.queues.map((q) => q.taskName))].sort();
  const wanted = filter.trim().toLowerCase();
  const names = wanted ? all.filter((n) => n.toLowerCase().includes(wanted)) : all;
  const Q = ["NEW", "READY", "PARKED", "DELETED"];
  const count = (queue: string, name: string) =>
    queues.queues.find((q) => q.queue === queue && q.taskName === name)?.count ?? 0;
  const lag = new Map(queues.readyLag.map((l) => [l.taskName, l.oldestReadyAgeMs]));
  const leader = nodes.items.find((n) => n.isLeader);
  return (
    <>
      <h1>Overview</h1>
      <ErrorNote error={error} />
      <div class="cards">
        <div class="card">
          <div class="big">{nodes.items.length}</div> nodes
        </div>
        <div class="card">
          <div class="big">{leader ? leader.id.slice(-8) : "none"}</div> leader{leader ? ` (${leader.host})` : ""}
        </div>
        {Q.slice(0, 3).map((q) => (
          <div class="card" key={q}>
            <div class="big">{queues.queues.filter((x) => x.queue === q).reduce((a, x) => a + x.count, 0)}</div> {q}
          </div>
        ))}
      </div>
      <h2>Tasks finished per second</h2>
      <ThroughputChart series={throughput} />
      <h2>Tasks by virtual queue and name</h2>
      <p class="filter-row">
        <label>
          Task name{" "}
          <input
            type="search"
            value={filter}
            placeholder="filter by name"
            data-testid="queue-filter"
            onInput={(e) => setFilter(e.currentTarget.value)}
          />
        </label>{" "}
        {wanted && (
          <span class="hint" role="status">
            {names.length} of {all.length} task names
          </span>
        )}
      </p>
      <table data-testid="queues">
        <thead>
          <tr>
            <th scope="col">Task</th>
            {Q.map((q) => (
              <th scope="col" class="num" key={q}>
                {q}
              </th>
            ))}
            <th scope="col" class="num">
              Oldest READY
            </th>
          </tr>
        </thead>
        <tbody>
          {names.length === 0 && (
            <tr>
              <td colSpan={6}>{all.length === 0 ? "No unfinished tasks." : "No task name matches the filter."}</td>
            </tr>
          )}
          {names.map((name) => (
            <tr key={name}>
              <td>{name}</td>
              {Q.map((q) => (
                <td class="num" key={q}>
                  {count(q, name)}
                </td>
              ))}
              <td class="num">{lag.has(name) ? duration(lag.get(name) ?? 0) : "—"}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {queues.parked.length > 0 && (
        <>
          <h2>PARKED by reason</h2>
          <ul>
            {queues.parked.map((p) => (
              <li key={p.reason}>
                {p.reason}: {p.count}
              </li>
            ))}
          </ul>
        </>
      )}
      <h2>Nodes</h2>
      <NodeTable nodes={nodes.items} />
    </>
  );
}
