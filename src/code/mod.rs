//! Code resolution: fetch a payload, verify its digest, extract it safely, cache it.
