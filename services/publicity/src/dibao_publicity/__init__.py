"""dibao publicity service: Three-list publicity: notices, public pages and objections."""
