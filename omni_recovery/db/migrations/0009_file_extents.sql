-- Every section of a file's stored bytes in its ISO, in order: a multi-extent file's sections may lie
-- anywhere in the image (extent_offset is only where the first starts). NULL for rows loaded before
-- this column existed, and for folders and symbolic links.

ALTER TABLE omni.files ADD COLUMN extents jsonb;
COMMENT ON COLUMN omni.files.extents IS
    'the stored bytes'' sections as [[byte offset in the ISO, length], ...], in file order';
