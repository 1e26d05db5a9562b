/** What route modules need from the daemon. */
import type { ContainerManager } from '../runtime/manager.js';
import type { ImageStore } from '../images/types.js';

export interface ApiContext {
  manager: ContainerManager;
  images: ImageStore;
  /** daemon facts for /info and /version */
  info: {
    dataRoot: string;
    execRoot: string;
    version: string;
    id: string;
    name: string;
    /** `--userns-remap` is on (info: SecurityOptions name=userns) */
    userns?: boolean;
  };
  log: (msg: string) => void;
}
