// The docker CLI against the daemon running the real parts (image store, base disks, host
// isolation with tvm-agent, VM isolation on this host's backend: tcg here, kvm where
// /dev/kvm exists). One suite, both isolations: the Isolation contract as users see it.
import { dockerCliSuite } from './suite.js';

dockerCliSuite(['container', 'vm'], { fake: false });
