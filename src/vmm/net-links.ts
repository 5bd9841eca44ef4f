/**
 * The host side of every network card of a VM: a passt per `user` card (the published
 * ports go to the first), a {@link SwitchLink} per card on a virtual network, a
 * {@link TapNetBackend} per host tap device, each behind
 * a {@link NetShaper} that meters it and holds it to the VM's bandwidth cap.
 */
import type { NetBackend } from '../devices/bus.js';
import { NetShaper } from '../devices/node/net-shaper.js';
import { TapNetBackend, openTap } from '../devices/node/tap-net.js';
import { NetworkConfigError, type NicDefinition, type PublishedPort } from './network.js';
import { startPasst } from './passt.js';
import { SwitchLink } from './switch-link.js';

/** A started card backend. */
export interface NetLink {
  /** What the card is attached to: the link behind its meter and cap. */
  backend: NetShaper;
  stop(): void;
}

function shaped(link: NetBackend, stop: () => void, rateMbit: number): NetLink {
  const backend = new NetShaper(link, { rateMbit });
  return { backend, stop: () => { backend.close(); stop(); } };
}

/**
 * Starts the backends of `nics`, in order; on failure the ones already started are stopped.
 * @param switchDir folder of the daemon's switch sockets (needed for `network` cards).
 * @param rateMbit bandwidth cap of each card, Mbit/s each way (0: none).
 * @throws NetworkConfigError (passt missing, a port in use, no switch folder).
 */
export async function startNetLinks(vm: string, nics: readonly NicDefinition[], publish: readonly PublishedPort[], log: (line: string) => void, switchDir?: string, rateMbit = 0): Promise<NetLink[]> {
  const links: NetLink[] = [];
  let published = false;
  try {
    for (const nic of nics) {
      if (nic.kind === 'user') {
        const ports = published ? [] : publish;
        published = true;
        const p = await startPasst({
          publish: ports,
          onLog: (line) => log(`passt (${nic.mac}): ${line}`),
          onError: (m) => log(`network card ${nic.mac}: ${m}`),
        });
        links.push(shaped(p.backend, () => p.stop(), rateMbit));
      } else if (nic.kind === 'tap') {
        let fd: number;
        try {
          fd = openTap(nic.ifname);
        } catch (e) {
          throw new NetworkConfigError((e as Error).message);
        }
        const tap = new TapNetBackend(fd, { onError: (m) => log(`network card ${nic.mac}: ${m}`) });
        links.push(shaped(tap, () => {}, rateMbit)); // closing the shaper closes the device
      } else {
        if (!switchDir) throw new NetworkConfigError(`network ${nic.network}: virtual networks are served by the host daemon (vm create --network ${nic.network})`);
        const link = new SwitchLink({ dir: switchDir, network: nic.network, vm, mac: nic.mac, log });
        links.push(shaped(link, () => {}, rateMbit)); // closing the shaper closes the link
      }
    }
  } catch (e) {
    for (const l of links) l.stop();
    throw e;
  }
  return links;
}
