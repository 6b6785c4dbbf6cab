//! Each grant's own Bitrix24 client: built on demand from the grant's sealed token pair, sharing
//! the portal's HTTP connections, request-rate bucket and operating-time blocks with every other
//! user, with its own token lineage and its own shared reads. (H3 fills this in.)
