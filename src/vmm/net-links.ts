/**
 * The host side of every network card of a VM: a passt per `user` card (the published
 * ports go to the first), a {@link SwitchLink} per card on a virtual network.
 */
import type { NetBackend } from '../devices/bus.js';
import { NetworkConfigError, type NicDefinition, type PublishedPort } from './network.js';
import { startPasst } from './passt.js';
import { SwitchLink } from './switch-link.js';

/** A started card backend. */
export interface NetLink {
  backend: NetBackend;
  stop(): void;
}

/**
 * Starts the backends of `nics`, in order; on failure the ones already started are stopped.
 * @param switchDir folder of the daemon's switch sockets (needed for `network` cards).
 * @throws NetworkConfigError (passt missing, a port in use, no switch folder).
 */
export async function startNetLinks(vm: string, nics: readonly NicDefinition[], publish: readonly PublishedPort[], log: (line: string) => void, switchDir?: string): Promise<NetLink[]> {
  const links: NetLink[] = [];
  let published = false;
  try {
    for (const nic of nics) {
      if (nic.kind === 'user') {
        const ports = published ? [] : publish;
        published = true;
        links.push(await startPasst({
          publish: ports,
          onLog: (line) => log(`passt (${nic.mac}): ${line}`),
          onError: (m) => log(`network card ${nic.mac}: ${m}`),
        }));
      } else {
        if (!switchDir) throw new NetworkConfigError(`network ${nic.network}: virtual networks are served by the host daemon (vm create --network ${nic.network})`);
        const link = new SwitchLink({ dir: switchDir, network: nic.network, vm, mac: nic.mac, log });
        links.push({ backend: link, stop: () => link.close() });
      }
    }
  } catch (e) {
    for (const l of links) l.stop();
    throw e;
  }
  return links;
}
