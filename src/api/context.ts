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
  };
  log: (msg: string) => void;
}
