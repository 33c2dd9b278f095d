"""mailrelay — lands with a later issue; the package exists to fix the layout."""
