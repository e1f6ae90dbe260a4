/**
 * Starts a real Portico gateway (the Python `portico serve`) on a loopback port for the
 * integration tests, and stops it again.
 *
 * The executable is $PORTICO_BIN, else the repository's .venv/bin/portico. The
 * configuration is written as JSON, which is valid YAML, so no YAML library is needed.
 */

import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;
const LISTENING = /^portico: listening on (\S+)$/;

export interface RunningGateway {
  /** "127.0.0.1:PORT". */
  readonly address: string;
  /** SIGTERM, then SIGKILL if the process has not exited within 10 s. */
  stop(): Promise<void>;
}

/** Every gateway still running; killed on exit so a failing test leaves no process. */
const running = new Set<ChildProcess>();
function killAll(): void {
  for (const child of running) {
    child.kill("SIGKILL");
  }
}
process.on("exit", killAll);
// A test run interrupted by a signal skips the "exit" event; clean up, then die as asked.
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    killAll();
    process.kill(process.pid, signal);
  });
}

export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "proto", "portico", "v1"))) {
    const parent = dirname(dir);
    if (parent === dir) {
      throw new Error("cannot find the repository root (a directory with proto/portico/v1)");
    }
    dir = parent;
  }
  return dir;
}

export function porticoBin(): string {
  return process.env.PORTICO_BIN ?? resolve(repoRoot(), ".venv", "bin", "portico");
}

/** Starts `portico serve` with `config` (a config tree as in the YAML file). */
export async function startGateway(config: Record<string, unknown>): Promise<RunningGateway> {
  const dir = await mkdtemp(join(tmpdir(), "portico-ts-"));
  const file = join(dir, "portico.yaml");
  await writeFile(file, JSON.stringify(config, null, 2));

  const child = spawn(porticoBin(), ["serve", "--config", file, "--address", "127.0.0.1:0", "--workers", "1"], {
    stdio: ["ignore", "pipe", "pipe"],
    // The default vector store keeps its files under the data directory: the test's own.
    env: { ...process.env, PORTICO_DATA_DIR: dir },
  });
  running.add(child);
  const exited = new Promise<void>((done) => child.once("exit", () => done()));
  exited.then(() => running.delete(child), () => undefined);

  let stderr = "";
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (text: string) => {
    // Keep the tail only: enough to explain a failed start.
    stderr = (stderr + text).slice(-8_000);
  });

  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const killer = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(killer);
    }
    await rm(dir, { recursive: true, force: true });
  };

  try {
    const address = await listeningAddress(child, () => stderr);
    return { address, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

function listeningAddress(child: ChildProcess, stderr: () => string): Promise<string> {
  return new Promise((resolveAddress, reject) => {
    const lines = createInterface({ input: child.stdout! });
    const fail = (why: string): void => {
      cleanup();
      reject(new Error(`${porticoBin()} ${why}\n--- stderr ---\n${stderr()}`));
    };
    const timer = setTimeout(() => fail(`did not start within ${START_TIMEOUT_MS} ms`), START_TIMEOUT_MS);
    const onLine = (line: string): void => {
      const match = LISTENING.exec(line.trim());
      if (match !== null) {
        cleanup();
        resolveAddress(match[1]!);
      }
    };
    const onExit = (code: number | null, signal: string | null): void =>
      fail(`exited before listening (code ${code}, signal ${signal})`);
    const onError = (error: Error): void => fail(`could not be started: ${error.message}`);
    const cleanup = (): void => {
      clearTimeout(timer);
      lines.off("line", onLine);
      child.off("exit", onExit);
      child.off("error", onError);
    };
    lines.on("line", onLine);
    child.once("exit", onExit);
    child.once("error", onError);
  });
}
