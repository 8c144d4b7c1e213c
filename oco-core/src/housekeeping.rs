//! Housekeeping: expiry, purge, Wake-on-LAN; and container statistics.
