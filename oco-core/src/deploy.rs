//! Creating jobs: deploy, uninstall and renew.
