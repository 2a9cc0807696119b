//! SIP user agent (INVITE with digest auth, BYE) and RTP G.711 u-law sender for paging, blocking std UDP; builds for wasm32-wasip2
