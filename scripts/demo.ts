// Replaced as the parts land: runs a container (container isolation) and boots our kernel in our VMM.
console.log('[demo] nothing to run yet: the daemon and the VMM are being built (see README status)');
