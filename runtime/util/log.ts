/** A small leveled logger: one line per event, prefixed with the time and the server's name. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** Log lines at or above this level are printed (env KUAFU_LOG_LEVEL, default info). */
function threshold(): number {
  const level = (process.env.KUAFU_LOG_LEVEL ?? 'info') as LogLevel;
  return ORDER[level] ?? ORDER.info;
}

export interface Logger {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string, error?: unknown): void;
  /** A logger whose lines carry `name` too. */
  child(name: string): Logger;
}

export function createLogger(name: string): Logger {
  const min = threshold();
  const write = (level: LogLevel, message: string) => {
    if (ORDER[level] < min) return;
    const line = `${new Date().toISOString()} ${level.padEnd(5)} [${name}] ${message}\n`;
    (level === 'error' || level === 'warn' ? process.stderr : process.stdout).write(line);
  };
  return {
    debug: (message) => write('debug', message),
    info: (message) => write('info', message),
    warn: (message) => write('warn', message),
    error: (message, error) =>
      write('error', error instanceof Error ? `${message}: ${error.stack ?? error.message}` : error === undefined ? message : `${message}: ${String(error)}`),
    child: (child) => createLogger(`${name} ${child}`),
  };
}
