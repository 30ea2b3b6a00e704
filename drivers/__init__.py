"""Device drivers: a transport (pyserial, pyusb, V4L2, evdev) joined to a codec, plus emulators."""
