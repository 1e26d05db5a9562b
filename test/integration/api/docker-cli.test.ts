// The docker CLI against the daemon running the real parts (image store, base disks, host
// isolation with tvm-agent). Add 'vm' to the list when the VM isolation exists.
import { dockerCliSuite } from './suite.js';

dockerCliSuite(['container'], { fake: false });
