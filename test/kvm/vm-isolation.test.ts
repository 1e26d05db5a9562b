/**
 * VM isolation on the kvm backend (tvm's own VMM): the same docker CLI suite as on tcg, with
 * `tvm daemon --vm-backend kvm`. Fails naming /dev/kvm where it is missing.
 */
import { requireKvmDevice } from '../fixtures/guests/guests.js';
import { vmIsolationSuite } from '../integration/vm/suite.js';

requireKvmDevice();
vmIsolationSuite('kvm');
