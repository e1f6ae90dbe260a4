/**
 * `Symbol.asyncDispose` where the runtime lacks it. Recent Node 20 releases define it,
 * earlier ones do not; TypeScript's `await using` looks the symbol up at run time, and the
 * classes of this package use it as a method key, so it must exist before they are built.
 * `Symbol.for` gives the same symbol other libraries' polyfills use.
 */

const symbols = Symbol as unknown as { asyncDispose?: symbol };
symbols.asyncDispose ??= Symbol.for("Symbol.asyncDispose");

export {};
