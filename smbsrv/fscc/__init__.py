"""[MS-FSCC] information classes as pure codecs: no I/O, no SMB2 framing.

attributes (FILE_ATTRIBUTE_*, reparse tags, FILETIME), file_info (QUERY_INFO file classes), set_info (SET_INFO
decoders), directory (QUERY_DIRECTORY entries), fs_info (file-system classes), security (SIDs, descriptors), ea
(EA lists), reparse (reparse buffers, symlink error), wildcard ([MS-FSA] 2.1.4.4 patterns).
"""
