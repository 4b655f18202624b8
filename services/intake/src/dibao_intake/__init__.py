"""dibao intake service: Households, members, applications and documents, for district portals."""
