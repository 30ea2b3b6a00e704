"""Card printers: the Evolis driver, its USB and /dev/usb/lp transports, and the status model."""
