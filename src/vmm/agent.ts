/**
 * Host side of the guest agent: runs commands in a running guest over the
 * virtio-console port `org.tsvisor.agent` (virtio-v1.2-cs01 §5.3, the device in
 * src/devices/virtio/console.ts; the guest end is `/bin/tsvisor-agent` of the
 * default image, src/images/initramfs.ts).
 *
 * ## Protocol (version 1)
 *
 * Lines of ASCII ended by `\n`, one message per line, fields separated by one
 * space. Payloads are base64 (RFC 4648, with padding), so any bytes survive.
 *
 * Host → agent:
 * - `H` — hello; the agent answers `H ok`.
 * - `E <id> <cmd>` — run a command. `<id>` is a decimal exec id chosen by the
 *   host, unique among running execs; `<cmd>` is the base64 of a POSIX shell
 *   command line (UTF-8), run as `sh -c CMD` in /root with stdin /dev/null.
 *   {@link AgentClient.exec} quotes an argv into such a line.
 * - `P` — power off the guest (`sync; poweroff -f`); no answer.
 *
 * Agent → host:
 * - `H ok` — answer to `H`; also sent once when the agent starts.
 * - `O <id> <data>` — a chunk of the command's stdout (base64, at most 22 KiB
 *   decoded; one chunk per read() of the output pipe, so output arrives while the
 *   command runs).
 * - `R <id> <data>` — the same for stderr.
 * - `X <id> <status>` — the command ended; `<status>` is the shell's exit status
 *   (0-255, 128+N when killed by signal N; 255 when the agent could not start it).
 *   Comes after every `O`/`R` line of that id.
 *
 * Lines from concurrent execs interleave (each line is whole). Unknown lines are
 * ignored by both ends, so new message types can be added.
 */

/** Where the client writes: the host end of the agent port (e.g. `board.agent`, a VirtioConsolePort). */
export interface AgentTransport {
  /**
   * Send bytes to the guest agent (buffered by the transport until the guest takes them).
   * Returns false when the transport dropped them (its buffer is full: the guest is not
   * reading); anything else means they were queued whole.
   */
  write(bytes: Uint8Array): unknown;
}

/** Receivers of one exec's output; each gets the decoded bytes of one chunk, in order. */
export interface ExecHandlers {
  stdout(bytes: Uint8Array): void;
  stderr(bytes: Uint8Array): void;
}

/** Options of {@link AgentClient}. */
export interface AgentClientOptions {
  /** First interval between `H` retries in ready(), in ms (default 500); doubles up to 5000. */
  pingIntervalMs?: number;
  /** Longest line accepted from the guest, in bytes (default 1 MiB); longer lines are dropped. */
  maxLineBytes?: number;
}

/** The agent went away or the client was closed: pending calls are rejected with this. */
export class AgentError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AgentError';
  }
}

interface PendingExec {
  handlers: ExecHandlers;
  resolve(status: number): void;
  reject(e: Error): void;
}

const NL = 0x0a;

/**
 * Quote `argv` for a POSIX shell so that `sh -c` runs exactly that argv
 * (words made only of safe characters stay bare; others are single-quoted).
 */
export function shellQuoteArgv(argv: readonly string[]): string {
  return argv.map((a) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/**
 * Client of the guest agent over one byte stream. Feed it everything the guest
 * writes on the port ({@link receive}); it writes requests with `transport.write`.
 *
 * ```ts
 * let client!: AgentClient;
 * const vm = await Vm.create({ ..., agent: { onData: (b) => client.receive(b) } });
 * client = new AgentClient(vm.board.agent!);
 * void vm.run();
 * await client.ready();
 * const status = await client.exec(['uname', '-a'], { stdout: (b) => process.stdout.write(b), stderr: (b) => process.stderr.write(b) });
 * ```
 */
export class AgentClient {
  private readonly pingMs: number;
  private readonly maxLine: number;
  private nextId = 1;
  private readonly execs = new Map<number, PendingExec>();
  private readonly helloWaiters: { resolve(): void; reject(e: Error): void }[] = [];
  /** Received bytes of the current, unfinished line. */
  private partial: Uint8Array[] = [];
  private partialBytes = 0;
  private discarding = false;
  private closedReason: string | null = null;
  /** The agent answered `H ok` at least once. */
  private hello = false;

  constructor(private readonly transport: AgentTransport, options: AgentClientOptions = {}) {
    this.pingMs = options.pingIntervalMs ?? 500;
    this.maxLine = options.maxLineBytes ?? 1024 * 1024;
  }

  /** Whether the agent has said `H ok` since the client was made. */
  get isReady(): boolean {
    return this.hello;
  }

  /** Number of execs started and not yet ended. */
  get running(): number {
    return this.execs.size;
  }

  /**
   * Resolves once the agent answers a hello (`H` → `H ok`), sending `H` at once and
   * again after 0.5, 1, 2, 4, 5, 5, ... s until it does (the guest may still be booting).
   * @param timeoutMs reject with AgentError after this many ms (default: wait forever).
   */
  ready(timeoutMs?: number): Promise<void> {
    if (this.closedReason !== null) return Promise.reject(new AgentError(this.closedReason));
    if (this.hello) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      let deadline: ReturnType<typeof setTimeout> | undefined;
      let interval = this.pingMs;
      const done = () => {
        clearTimeout(timer);
        clearTimeout(deadline);
      };
      const waiter = {
        resolve: () => { done(); resolve(); },
        reject: (e: Error) => { done(); reject(e); },
      };
      this.helloWaiters.push(waiter);
      const ping = () => {
        if (this.hello || this.closedReason !== null) return;
        this.send('H\n');
        timer = setTimeout(ping, interval);
        interval = Math.min(interval * 2, 5000);
      };
      if (timeoutMs !== undefined) {
        deadline = setTimeout(() => {
          const i = this.helloWaiters.indexOf(waiter);
          if (i >= 0) this.helloWaiters.splice(i, 1);
          waiter.reject(new AgentError(`the guest agent did not answer within ${timeoutMs} ms`));
        }, timeoutMs);
      }
      ping();
    });
  }

  /**
   * Run `argv` in the guest (`sh -c` of the quoted argv, in /root, stdin /dev/null)
   * and stream its output to `handlers` while it runs.
   * @returns its exit status (0-255; 128+N if killed by signal N; 255 if the agent could not start it).
   * @throws AgentError if the client is closed before the command ends.
   */
  exec(argv: readonly string[], handlers: ExecHandlers): Promise<number> {
    if (argv.length === 0) return Promise.reject(new RangeError('exec: empty argv'));
    return this.execShell(shellQuoteArgv(argv), handlers);
  }

  /** Like {@link exec} with a shell command line (`sh -c commandLine`). */
  execShell(commandLine: string, handlers: ExecHandlers): Promise<number> {
    if (this.closedReason !== null) return Promise.reject(new AgentError(this.closedReason));
    const id = this.nextId++;
    return new Promise<number>((resolve, reject) => {
      this.execs.set(id, { handlers, resolve, reject });
      if (!this.send(`E ${id} ${Buffer.from(commandLine, 'utf8').toString('base64')}\n`)) {
        this.execs.delete(id);
        reject(new AgentError('the guest agent is not reading its port (host buffer full)'));
      }
    });
  }

  /** Ask the guest to power off (`sync; poweroff -f`). Does not wait; the VM's run() ends when it does. */
  poweroff(): void {
    if (this.closedReason === null) this.send('P\n');
  }

  /**
   * Stop using the agent (e.g. the VM stopped): pending ready() and exec() calls
   * reject with AgentError(`reason`); later calls reject at once.
   */
  close(reason = 'agent connection closed'): void {
    if (this.closedReason !== null) return;
    this.closedReason = reason;
    const err = new AgentError(reason);
    for (const w of this.helloWaiters.splice(0)) w.reject(err);
    for (const e of this.execs.values()) e.reject(err);
    this.execs.clear();
  }

  /** Feed bytes the guest agent wrote (the port's onData). Any split of the stream is fine. */
  receive(bytes: Uint8Array): void {
    let start = 0;
    for (;;) {
      const nl = bytes.indexOf(NL, start);
      if (nl < 0) {
        this.keep(bytes.subarray(start));
        return;
      }
      this.keep(bytes.subarray(start, nl));
      start = nl + 1;
      const line = this.takeLine();
      if (line !== null) this.handleLine(line);
    }
  }

  // ---- internals ----

  /** False when the transport dropped the line. */
  private send(text: string): boolean {
    return this.transport.write(new TextEncoder().encode(text)) !== false;
  }

  private keep(part: Uint8Array): void {
    if (part.length === 0 || this.discarding) return;
    if (this.partialBytes + part.length > this.maxLine) {
      this.discarding = true;
      this.partial = [];
      this.partialBytes = 0;
      return;
    }
    this.partial.push(part.slice());
    this.partialBytes += part.length;
  }

  /** The finished line, or null when it was too long (dropped). */
  private takeLine(): string | null {
    if (this.discarding) {
      this.discarding = false;
      return null;
    }
    const line = Buffer.concat(this.partial).toString('latin1');
    this.partial = [];
    this.partialBytes = 0;
    return line;
  }

  private handleLine(raw: string): void {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    const f = line.split(' ');
    switch (f[0]) {
      case 'H':
        if (f[1] === 'ok') {
          this.hello = true;
          for (const w of this.helloWaiters.splice(0)) w.resolve();
        }
        return;
      case 'O':
      case 'R': {
        const e = this.execFor(f[1]);
        if (!e) return;
        const data = new Uint8Array(Buffer.from(f[2] ?? '', 'base64'));
        if (data.length === 0) return;
        try {
          if (f[0] === 'O') e.handlers.stdout(data); else e.handlers.stderr(data);
        } catch {
          // a handler bug must not break the stream for other execs
        }
        return;
      }
      case 'X': {
        const id = Number(f[1]);
        const e = this.execFor(f[1]);
        if (!e) return;
        const st = Number(f[2]);
        this.execs.delete(id);
        e.resolve(Number.isInteger(st) && st >= 0 && st <= 255 ? st : 255);
        return;
      }
      default:
        // unknown message: ignore
    }
  }

  private execFor(idText: string | undefined): PendingExec | undefined {
    if (!idText || !/^\d+$/.test(idText)) return undefined;
    return this.execs.get(Number(idText));
  }
}
