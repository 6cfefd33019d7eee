"""`python -m hosts.timeline_service`: what the host's systemd unit starts."""

from hosts.timeline_service.app import main

if __name__ == "__main__":
    main()
