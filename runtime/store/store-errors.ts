import { StaleOwnerError } from '../errors.js';
import { ownerOf, type Route } from './store.js';

/** The StaleOwnerError for a claim or save under `epoch` when the route is now `current`. */
export function staleOwner(pid: number, epoch: number, current: Pick<Route, 'home' | 'at' | 'epoch'>): StaleOwnerError {
  const owner = ownerOf(current as Route);
  return new StaleOwnerError(
    `Player ${pid} is now owned by ${owner} under epoch ${current.epoch}, not epoch ${epoch}: ` +
      `this server lost him. Drop its copy and reach him through his owner.`,
    { pid, epoch: current.epoch, at: current.at, home: current.home, owner },
  );
}
