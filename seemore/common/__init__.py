"""Small pieces every other subpackage uses, written once: atomic files and hashes, tensors and
PSNR, tables, timing loops. Nothing here imports another ``seemore`` subpackage."""
