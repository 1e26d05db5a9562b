// VM isolation on this host's backend (tcg on machines without /dev/kvm; test/kvm forces kvm).
import { vmIsolationSuite } from './suite.js';

vmIsolationSuite();
