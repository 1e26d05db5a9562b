/**
 * Plays a daemon that starts a container and then dies by SIGKILL (no cleanup at all).
 * argv: JSON of { spec, dataRoot, runRoot, disk }.
 */
import { HostIsolation } from '../../../../src/runtime/host/isolation.js';
import { AGENT, fakeImages } from './harness.js';

const { spec, dataRoot, runRoot, disk } = JSON.parse(process.argv[2]!);
const iso = new HostIsolation({ dataRoot, runRoot, agentPath: AGENT, ...fakeImages(disk) });
await iso.create(spec);
const info = await iso.start(spec);
process.stdout.write(`${JSON.stringify(info)}\n`, () => process.kill(process.pid, 'SIGKILL'));
