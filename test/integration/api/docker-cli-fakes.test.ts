// The docker CLI against the daemon running on the fakes: the API and its plumbing, fast.
import { dockerCliSuite } from './suite.js';

dockerCliSuite(['container'], { fake: true });
