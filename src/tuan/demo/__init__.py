"""The demo business (``tuan demo``): see :mod:`tuan.demo.simulate` and :mod:`tuan.demo.data`."""
