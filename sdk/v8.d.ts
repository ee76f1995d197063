/** V8's own additions the SDK uses (the isolate is V8; ES2022's lib does not declare them). */
interface ErrorConstructor {
  /** Sets `target.stack` to the current stack, leaving out `constructorOpt` and the frames above it. */
  captureStackTrace(target: object, constructorOpt?: Function): void;
}
