import { render } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError, api, onUnauthorized, setToken, type Whoami } from "./api.js";
import { Cron, Nodes } from "./pages/cron-nodes.js";
import { DeadLetterPage, DeadLetters } from "./pages/dead-letters.js";
import { Overview } from "./pages/overview.js";
import { Slots } from "./pages/slots.js";
import { Workflow } from "./pages/workflow.js";
import { Workflows } from "./pages/workflows.js";

// The shell: sign-in, the header, the router (pages under pages/).

function useHash(): string {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const on = () => setHash(location.hash);
    addEventListener("hashchange", on);
    return () => removeEventListener("hashchange", on);
  }, []);
  return hash;
}

// ---------------------------------------------------------------------------
// Login

function Login({ onDone, failed }: { onDone: () => void; failed: boolean }) {
  const [value, setValue] = useState("");
  return (
    <main class="login">
      <h1>Weft</h1>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          setToken(value.trim());
          onDone();
        }}
      >
        <label for="token">API token</label>
        <p class="hint">
          A bearer token of this server (<code>weft serve --token read:…</code>). It stays in this tab (sessionStorage).
        </p>
        <input
          id="token"
          type="password"
          autocomplete="off"
          value={value}
          onInput={(e) => setValue(e.currentTarget.value)}
          required
        />
        <button type="submit">Sign in</button>
        {failed && (
          <p class="error" role="alert">
            That token was refused.
          </p>
        )}
      </form>
    </main>
  );
}

const NAV: [string, string][] = [
  ["#/", "Overview"],
  ["#/workflows", "Workflows"],
  ["#/dead-letters", "Dead letters"],
  ["#/slots", "Slots"],
  ["#/cron", "Cron"],
  ["#/nodes", "Nodes"],
];

function App() {
  const hash = useHash();
  const [me, setMe] = useState<Whoami | null>(null);
  const [needLogin, setNeedLogin] = useState(false);
  const [refused, setRefused] = useState(false);
  const [tick, setTick] = useState(0);
  // Whether a token was entered in the form: a 401 then means it was refused.
  const tried = useRef(false);
  useEffect(() => {
    api<Whoami>("/v1/whoami").then(
      (w) => {
        setMe(w);
        setNeedLogin(false);
      },
      (e: unknown) => {
        if (e instanceof ApiError && e.status === 401) {
          setRefused(tried.current);
          tried.current = false;
          setToken(null);
          setNeedLogin(true);
        }
      },
    );
  }, [tick]);
  useEffect(
    () =>
      onUnauthorized(() => {
        setToken(null);
        setMe(null);
        setNeedLogin(true);
      }),
    [],
  );
  if (needLogin)
    return (
      <Login
        failed={refused}
        onDone={() => {
          tried.current = true;
          setTick((t) => t + 1);
        }}
      />
    );
  if (!me) return <p class="loading">Loading…</p>;

  const [route = "", queryString = ""] = hash.replace(/^#/, "").split("?");
  const parts = route.split("/").filter(Boolean);
  const query = new URLSearchParams(queryString);
  let page: preact.JSX.Element;
  let section = "#/";
  if (parts[0] === "workflows" && parts[1]) {
    page = <Workflow id={parts[1]} me={me} />;
    section = "#/workflows";
  } else if (parts[0] === "workflows") {
    page = <Workflows />;
    section = "#/workflows";
  } else if (parts[0] === "dead-letters" && parts[1]) {
    page = <DeadLetterPage taskId={parts[1]} me={me} />;
    section = "#/dead-letters";
  } else if (parts[0] === "dead-letters") {
    page = <DeadLetters me={me} />;
    section = "#/dead-letters";
  } else if (parts[0] === "slots") {
    page = <Slots me={me} query={query} />;
    section = "#/slots";
  } else if (parts[0] === "cron") {
    page = <Cron />;
    section = "#/cron";
  } else if (parts[0] === "nodes") {
    page = <Nodes />;
    section = "#/nodes";
  } else page = <Overview />;
  return (
    <>
      <header>
        <a class="brand" href="#/">
          Weft
        </a>
        <nav aria-label="sections">
          {NAV.map(([href, label]) => (
            <a key={href} href={href} aria-current={section === href ? "page" : undefined}>
              {label}
            </a>
          ))}
        </nav>
        <span class="scope" data-testid="scope">
          {me.scope === "write" ? "write access" : "read-only"}
        </span>
        {me.auth === "bearer" && (
          <button
            type="button"
            class="link"
            onClick={() => {
              setToken(null);
              setMe(null);
              setRefused(false);
              setNeedLogin(true);
            }}
          >
            Sign out
          </button>
        )}
      </header>
      <main key={hash}>{page}</main>
    </>
  );
}

render(<App />, document.getElementById("app") as HTMLElement);
