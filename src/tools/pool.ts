/**
 * Bounded concurrency over a stream of work: at most `limit` items in flight, the source pulled only as fast
 * as items finish (a listing is never read far ahead of the work). Setting `stop.stopped` lets the running
 * items finish and starts no new one. `work` reports its own failures (a rejection stops the pool too).
 */
export async function runPool<T>(source: AsyncIterable<T>, limit: number, work: (item: T) => Promise<void>, pool: { stopped: boolean } = { stopped: false }): Promise<void> {
  const it = source[Symbol.asyncIterator]();
  let failure: unknown;
  let failed = false;
  // Pulls are serialised: an async generator must not be asked for two items at once.
  let pulling: Promise<unknown> = Promise.resolve();
  const next = (): Promise<IteratorResult<T>> => {
    const p = pulling.then(() => it.next());
    pulling = p.catch(() => {});
    return p;
  };
  const worker = async () => {
    while (!pool.stopped && !failed) {
      let r: IteratorResult<T>;
      try {
        r = await next();
      } catch (e) {
        // The source itself failed (a listing page): nothing more can be started.
        if (!failed) failure = e;
        failed = true;
        return;
      }
      if (r.done) return;
      await work(r.value);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, limit) }, worker));
  if (pool.stopped || failed) await it.return?.(undefined);
  if (failed) throw failure;
}
